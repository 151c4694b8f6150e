"""Keys: bearer auth, clear 401s, and environments that cannot see each other's runs."""

from tests.integration.conftest import Stack


def test_missing_key_says_which_header_to_send(stack: Stack) -> None:
    with stack.http() as http:
        response = http.post("/api/v1/tasks/echo/trigger", json={"payload": {}}, headers={"Authorization": ""})
    assert response.status_code == 401
    error = response.json()["error"]
    assert error["code"] == "authentication_error"
    assert "Authorization: Bearer" in error["message"]


def test_unknown_key_is_rejected(stack: Stack) -> None:
    with stack.http(key="ht_dev_not-a-real-key") as http:
        response = http.get("/api/v1/runs")
    assert response.status_code == 401
    assert "invalid secret key" in response.json()["error"]["message"]


def test_keys_are_scoped_to_their_environment(stack: Stack) -> None:
    with stack.http() as http:
        run_id = http.post("/api/v1/tasks/echo/trigger", json={"payload": {"x": 1}}).json()["id"]
    prod_key = stack.new_key("prod")
    assert prod_key.startswith("ht_prod_")
    with stack.http(key=prod_key) as prod:
        assert prod.get(f"/api/v1/runs/{run_id}").status_code == 404  # not 403: it does not exist there
        assert prod.post(f"/api/v1/runs/{run_id}/cancel").status_code == 404
        assert all(run["id"] != run_id for run in prod.get("/api/v1/runs").json()["data"])
        # and the dev task is not registered in prod
        assert prod.post("/api/v1/tasks/echo/trigger", json={"payload": {}}).status_code == 404


def test_openapi_is_served(stack: Stack) -> None:
    with stack.http() as http:
        spec = http.get("/api/openapi.json").json()
        assert "/api/v1/tasks/{task_id}/trigger" in spec["paths"]
        assert http.get("/api/docs").status_code == 200
