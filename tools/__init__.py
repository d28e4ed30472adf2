"""Tools of this repository (not of the csxa library): refreshing docs/results.md, the paper protocol."""
