"""Paper trading: the broker's ledger, the trader, the kill switch, the loop's heartbeat."""
