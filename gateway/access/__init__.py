"""The offline access engine: windows, codes, tokens, lockouts, proof of delivery."""
