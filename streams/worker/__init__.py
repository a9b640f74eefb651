"""The Faust stream-processing worker: student records, scoring, interventions, the live engagement API."""
