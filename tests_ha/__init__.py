"""Tests of the NUT Bridge Home Assistant integration."""
