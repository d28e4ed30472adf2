"""The embedded default input: a synthetic CSXA release with the real release's layout and faults.

A test-data maker, not part of the data path: only ``csxa-data synth`` and the tests import it."""
