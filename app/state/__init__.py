"""Qt models without widgets: what the app knows, announced with signals (GUI thread only).

Session (scan, cursor, window, layout), label layer (facade over the engine editor),
case (lungs, accepted models, numbers), AI proposal, tool settings, preferences,
notices and the worker runner. May import only :mod:`engine`.
"""
