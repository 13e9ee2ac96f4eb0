"""Broken ramie.layers plug-ins (test fixture); see the two submodules."""
