"""napari plugin for utom: a reader for its outputs and a widget to preview and predict.

Nothing is imported here: napari reads the manifest (napari.yaml) and imports the reader or
the widget only when they are used.
"""
