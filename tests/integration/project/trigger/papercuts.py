"""Tasks for tests/integration/test_papercuts.py: validation, non-retryable failures, sync tasks."""

from pydantic import BaseModel, field_validator

from hightide import ValidationError, task, wait


class Signup(BaseModel):
    email: str
    age: int

    @field_validator("email")
    @classmethod
    def _has_at(cls, value: str) -> str:
        if "@" not in value:
            raise ValueError("an email address has an @")
        return value


@task(id="signup", retry={"max_attempts": 3, "min_timeout": 0.05, "max_timeout": 0.1})
async def signup(payload: Signup) -> dict:
    return {"email": payload.email, "age_next_year": payload.age + 1}


@task(id="bad-output", retry={"max_attempts": 3, "min_timeout": 0.05, "max_timeout": 0.1})
async def bad_output(payload: dict) -> object:
    return {"handle": object()}


@task(id="sync-wait", retry={"max_attempts": 3, "min_timeout": 0.05, "max_timeout": 0.1})
def sync_wait(payload: dict) -> str:
    wait.for_(seconds=1)  # a plain def cannot wait: the run fails
    return "never waited"


@task(id="sync-wait-swallowed", retry={"max_attempts": 3, "min_timeout": 0.05, "max_timeout": 0.1})
def sync_wait_swallowed(payload: dict) -> str:
    try:
        wait.for_(seconds=1)
    except Exception:
        pass  # swallowing the error does not make the wait happen: the run still fails
    return "never waited"


@task(id="forgot-await", retry={"max_attempts": 3, "min_timeout": 0.05, "max_timeout": 0.1})
async def forgot_await(payload: dict) -> str:
    wait.for_(seconds=0.1)  # no await: the run fails, not finishes
    return "never waited"


@task(id="never-runs", queue={"concurrency_limit": 0})
async def never_runs(payload: dict) -> None:
    raise AssertionError("a queue with a concurrency limit of 0 starts nothing")


@task(id="signup-parent")
async def signup_parent(payload: dict) -> dict:
    try:
        result = await signup.trigger_and_wait({"email": payload["email"], "age": payload["age"]})
    except ValidationError as exc:  # refused before anything is recorded or sent
        return {"refused": exc.message}
    return {"child": result.output}


class Measure(BaseModel):
    count: int = 0
    ratio: float = 0.0


@task(id="measure")
async def measure(payload: Measure) -> dict:
    return {"count": payload.count}
