"""Input and output: mesh export and images."""
