"""Pipeline steps: one module per step, files in -> files out. A step never imports another step."""
