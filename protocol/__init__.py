"""The onecard protocol: events, codec, crypto, fold, rules and the sync wire (pure)."""

# Every node must know the conflict-remedy kinds central signs: registering them here
# means importing anything from protocol makes them validate and fold everywhere.
from protocol import remedies as remedies
