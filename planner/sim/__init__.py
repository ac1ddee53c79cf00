"""The discrete-event simulator: engine, pools, routing, replicas, faults and metrics."""
