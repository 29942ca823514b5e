"""The cluster lab: two HAProxy nodes with rhid behind a router with ECMP, and real client traffic."""
