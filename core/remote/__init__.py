"""RunPod: the job schema the worker validates and the client builds (`schema`), and the client that sends jobs to
an endpoint running this project's worker (`client`)."""
