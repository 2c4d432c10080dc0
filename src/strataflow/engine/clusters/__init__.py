"""Running clusters on the engine: reading vectors, fitting, measuring, naming, enriching."""
