"""Controllers: one flow each (open scans, window/level, probe, views, 3D).

Each controller takes the main window, adds its actions to ``window.menus`` /
``window.toolbar`` and talks to the models; the window itself only assembles them.
"""
