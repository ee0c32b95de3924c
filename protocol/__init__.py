"""The onecard protocol: events, codec, crypto, the domain core and the sync wire (pure)."""
