"""The local target: emulated AWS (moto plus the gaps it leaves filled), the Kubernetes API
emulator and a local Triton, hosted by one background daemon (see daemon.py)."""

# moto accepts any credentials; these make sure real ones are never sent to the sandbox.
SANDBOX_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
# Execution environments per function (radstream.sandbox.lambda_runner): its concurrency here.
MAX_WORKERS_PER_FUNCTION = 4

# In the sandbox's state dir: where each open application load balancer's DNS name leads on this
# machine (written by radstream.sandbox.alb_controller, read by the sandbox target).
LOAD_BALANCERS_FILE = "load-balancers.json"
