"""Rendering results for people: terminal tables now; HTML and markdown reports plug in here."""
