"""The bundled demo model (model/) and the script that trains it (train.py)."""
