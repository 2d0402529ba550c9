"""Video input: probe a file, choose frame indices, decode exactly those frames."""
