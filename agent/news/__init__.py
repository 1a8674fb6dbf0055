"""News headlines for the sentiment layer: feeds, ticker matching, screening and selection."""
