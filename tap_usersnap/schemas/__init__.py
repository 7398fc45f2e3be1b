"""JSON schemas of the streams, one file a stream."""
