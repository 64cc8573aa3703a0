"""What both services' decision procedures share: the records they emit and fold, the
input/outcome types, deterministic ids, parking of inputs that wait for a fact."""
