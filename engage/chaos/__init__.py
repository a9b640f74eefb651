"""`engage chaos`: faults while known events stream, then a per-student check that nothing was lost or doubled.

``reference`` computes what every student's numbers must be from the accepted events alone; ``schedule`` plans
the faults (seeded); ``supervisor`` runs and restarts the processes; ``feed`` sends the events through the
collector; ``verify`` reads the workers and ClickHouse and lists every difference; ``harness`` runs it all.
"""
