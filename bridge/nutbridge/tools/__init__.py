"""NUT-compatible command line tools (upsc, upscmd, upsrw, upslog)."""
