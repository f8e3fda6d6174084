"""One controller per user flow, each built by the main window with the typed context
(:class:`app.context.AppContext`) and the collaborators it needs; none sees the window."""
