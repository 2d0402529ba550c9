"""The demo VideoMAE pre-training model (`--model demo-mae`) and the script that trains it."""
