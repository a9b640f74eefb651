"""Risk models behind one interface: the transparent heuristic today, LightGBM once trained."""
