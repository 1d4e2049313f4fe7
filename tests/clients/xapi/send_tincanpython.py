"""TinCanPython (PyPI `tincan`) sends answers to spoc-engine's xAPI endpoint.

save_statement with and without an id (PUT and POST), save_statements with
and without ids. Exits non-zero unless every call reports success and the
ids the server made parse as UUIDs (the client refuses other versions than
1 to 5); prints {"client", "answers"} last.
"""

import json
import os
import sys
import uuid

from tincan import Activity, Agent, RemoteLRS, Result, Statement, Verb


def env(name):
    value = os.environ.get(name)
    if not value:
        sys.exit(f"{name} is not set")
    return value


SECONDS = iter(range(10, 1000))


def answer(success, with_id):
    # Each answer takes another duration: the engine takes two statements
    # without id and timestamp and with the same content for one sent twice.
    statement = Statement(
        actor=Agent(mbox="mailto:" + env("XAPI_LEARNER"), name="TinCanPython learner"),
        verb=Verb(id="http://adlnet.gov/expapi/verbs/answered", display={"en-US": "answered"}),
        object=Activity(id=env("XAPI_ITEM")),
        result=Result(success=success, duration=f"PT{next(SECONDS)}S"),
    )
    if with_id:
        statement.id = uuid.uuid4()
    return statement


def check(what, response):
    if not response.success:
        sys.exit(f"{what} failed: {response.response.status} {response.data!r}")


def main():
    lrs = RemoteLRS(
        endpoint=env("XAPI_ENDPOINT"),
        username=env("XAPI_USERNAME"),
        password=env("XAPI_PASSWORD"),
        version="1.0.3",
    )
    answers = 0
    for with_id, success in [(False, True), (True, False)]:
        statement = answer(success, with_id)
        response = lrs.save_statement(statement)
        check(f"save_statement (with id: {with_id})", response)
        if not isinstance(response.content.id, uuid.UUID):
            sys.exit(f"save_statement returned no UUID id: {response.content.id!r}")
        answers += 1
    for with_id in [False, True]:
        batch = [answer(True, with_id), answer(False, with_id), answer(True, with_id)]
        response = lrs.save_statements(batch)
        check(f"save_statements (with ids: {with_id})", response)
        ids = [s.id for s in response.content]
        if len(ids) != 3 or not all(isinstance(i, uuid.UUID) for i in ids):
            sys.exit(f"save_statements returned ids {ids!r}")
        answers += 3
    print(json.dumps({"client": "tincanpython", "answers": answers}))


if __name__ == "__main__":
    main()
