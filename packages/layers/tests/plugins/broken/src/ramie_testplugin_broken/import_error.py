"""A plug-in module that cannot be imported."""

raise ImportError("ramie_testplugin_broken.import_error is broken on purpose")
