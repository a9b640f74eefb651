"""Local stand-ins for the external providers: a real SMTP server (aiosmtpd), FCM HTTP v1's send endpoint and
Twilio's Messages API, implementing the documented endpoints, their authentication and their error answers.

For tests, the demo and the benchmarks only, never used in production: external SaaS cannot be reached from here,
so the channels (``notifications/channels``) are exercised against these over real sockets on 127.0.0.1.

- ``smtp``, ``fcm``, ``twilio``: the servers, usable inside a test (scripted answers per recipient, the requests
  they saw) or together as a process (``serve``: ``engage providers serve``);
- ``record``: what the process accepted, one JSON line per message (``accepted.jsonl``) and every e-mail whole
  (``mail/<id>.eml``), with the reader the demo, the benchmarks and the chaos verifier use;
- ``faults``: seeded fault injection (the providers' documented 429/503 answers, SMTP 451) and fixed latency;
- ``process``: start the process as a child where the settings point the channels, and wait until it is ready.
"""
