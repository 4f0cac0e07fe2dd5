"""A step load profile for the translator load test: add users in steps, hold each step, then stop.

Used by naming it after the locustfile (Locust runs the first LoadTestShape it finds, and then ignores
-u/-r/-t): `locust -f load/locustfile.py,load/shape.py --headless --host URL`. Without it the locustfile
runs a steady load (-u users). With the defaults: 10, 20, ... 60 users, 30 s each, 3 minutes in all.

  --step-users N     users added at each step (env LOCUST_STEP_USERS)
  --step-seconds S   how long each step lasts (env LOCUST_STEP_SECONDS)
  --steps K          how many steps; the run ends after K * S seconds (env LOCUST_STEPS)
  --step-spawn-rate  users started per second when a step begins (env LOCUST_STEP_SPAWN_RATE)
"""
from __future__ import annotations

from locust import LoadTestShape, events


@events.init_command_line_parser.add_listener
def _options(parser) -> None:
    g = parser.add_argument_group("step load shape (load/shape.py)")
    g.add_argument("--step-users", type=int, default=10, env_var="LOCUST_STEP_USERS",
                   help="users added at each step [default: %(default)s]")
    g.add_argument("--step-seconds", type=float, default=30.0, env_var="LOCUST_STEP_SECONDS",
                   help="seconds per step [default: %(default)s]")
    g.add_argument("--steps", type=int, default=6, env_var="LOCUST_STEPS",
                   help="number of steps; the run ends after steps * step-seconds [default: %(default)s]")
    g.add_argument("--step-spawn-rate", type=float, default=10.0, env_var="LOCUST_STEP_SPAWN_RATE",
                   help="users started per second at the start of a step [default: %(default)s]")


class StepLoadShape(LoadTestShape):
    """users(t) = step_users * (1 + floor(t / step_seconds)) for t < steps * step_seconds, then stop."""

    def tick(self):
        o = self.runner.environment.parsed_options
        step = int(self.get_run_time() // o.step_seconds)
        if step >= o.steps:
            return None
        return o.step_users * (step + 1), o.step_spawn_rate
