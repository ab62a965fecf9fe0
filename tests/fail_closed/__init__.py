"""Issue 12 "Fail closed": one test per case that did not hold, against the real emulator."""
