"""Running vivitcli's batch jobs on distributed engines (Ray). Nothing here is imported by a local run."""
