"""File formats at the edges of the pipeline: images, GeoTIFFs, label lists, result files."""
