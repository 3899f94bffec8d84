"""Small shared helpers: atomic file writes, image decoding with a pixel budget, depth convention, colour maps."""
