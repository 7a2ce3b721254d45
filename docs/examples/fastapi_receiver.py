"""A FastAPI endpoint that receives hookbook (or Tiled) webhook deliveries.

Run it with ``WEBHOOK_SECRET=... python fastapi_receiver.py`` and register
``http://127.0.0.1:9000/webhook`` with the same secret.
"""

from __future__ import annotations

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from hookbook.errors import SignatureError
from hookbook.events import parse_event
from hookbook.signing import verify


def create_receiver(secret: str) -> FastAPI:
    app = FastAPI()
    app.state.events = []  # what a real application would hand to a queue
    app.state.seen = set()  # event ids already handled (use your database)

    @app.post("/webhook")
    async def webhook(request: Request) -> Response:
        body = await request.body()  # the exact bytes that were signed
        try:
            verify(body, request.headers, secret)
        except SignatureError as exc:
            # The message says why: bad signature, stale timestamp, missing header.
            return JSONResponse({"detail": exc.detail}, status_code=401)
        event_id = request.headers["x-tiled-event-id"]
        if event_id not in app.state.seen:  # a retry of an event already handled
            app.state.events.append(parse_event(body))
            app.state.seen.add(event_id)
        return Response(status_code=204)  # any 2xx settles the delivery; answer fast

    return app


if __name__ == "__main__":
    import os

    import uvicorn

    uvicorn.run(create_receiver(os.environ["WEBHOOK_SECRET"]), host="127.0.0.1", port=9000)
