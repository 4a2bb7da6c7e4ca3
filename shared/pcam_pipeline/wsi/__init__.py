"""Whole-slide images: reading a tiled TIFF through any file object (`reader`, `structure`, `tile_decoding`,
`resolution`), finding tissue and planning tiles (`tiling`), ingestion and sidecars (`ingestion`), and the
slide's areas, overlay and QuPath GeoJSON (`results`)."""
