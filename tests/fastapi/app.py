"""A customer service written the way many FastAPI services are, for
auditgate's end-to-end tests (run by uvicorn, installed by scripts/test.sh).

Creates answer 201 with a streamed (chunked) JSON body and no Location:
- /api/v1/customers/  identity; pydantic lower-cases `email`, coerces `age`
  to an int, ignores `role` (read-only) and keeps `password` write-only;
- /api/v1/orders/     gzip-encoded when the client accepts it (mtime 0, so
  the bytes depend only on the content);
- /api/v1/ledgers/    ids past 64 bits (Python ints are exact).
GET, PATCH, PUT and DELETE (204) act on `/{collection}/{id}/`.
POST /reset starts the ids over, so two runs answer the same bytes.
"""

import gzip
import json

from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, field_validator

app = FastAPI()
STATE = {"next": 0, "rows": {}}
BIG = 10**29


class Address(BaseModel):
    city: str
    zip: str


class CustomerIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: str | None = None
    email: str | None = None
    age: int | None = None
    password: str | None = None
    address: Address | None = None

    @field_validator("email")
    @classmethod
    def normalise_email(cls, v):
        return v.strip().lower() if v is not None else v


def shown(row):
    return {k: v for k, v in row.items() if k != "password"}


def chunks(data: bytes, size: int = 16):
    for i in range(0, len(data), size):
        yield data[i : i + size]


def new_id(collection):
    STATE["next"] += 1
    return BIG + STATE["next"] if collection == "ledgers" else STATE["next"]


@app.post("/reset")
def reset():
    STATE["next"] = 0
    STATE["rows"].clear()
    return {"reset": True}


@app.post("/api/v1/{collection}/", status_code=201)
def create(collection: str, body: CustomerIn, request: Request):
    row = {"id": new_id(collection), "role": "customer"}
    row.update(body.model_dump(exclude_unset=True))
    STATE["rows"][(collection, row["id"])] = row
    data = json.dumps(shown(row)).encode()
    headers = {}
    if collection == "orders" and "gzip" in request.headers.get("accept-encoding", ""):
        data = gzip.compress(data, mtime=0)
        headers["content-encoding"] = "gzip"
    return StreamingResponse(chunks(data), status_code=201, media_type="application/json", headers=headers)


def find(collection, id):
    row = STATE["rows"].get((collection, id))
    if row is None:
        raise HTTPException(status_code=404, detail="not found")
    return row


@app.get("/api/v1/{collection}/{id}/")
def read(collection: str, id: int):
    return shown(find(collection, id))


@app.patch("/api/v1/{collection}/{id}/")
def update(collection: str, id: int, body: CustomerIn):
    row = find(collection, id)
    row.update(body.model_dump(exclude_unset=True))
    return shown(row)


@app.put("/api/v1/{collection}/{id}/")
def replace(collection: str, id: int, body: CustomerIn):
    old = find(collection, id)
    row = {"id": id, "role": old["role"]}
    row.update(body.model_dump(exclude_unset=True))
    STATE["rows"][(collection, id)] = row
    return shown(row)


@app.delete("/api/v1/{collection}/{id}/", status_code=204)
def delete(collection: str, id: int):
    find(collection, id)
    del STATE["rows"][(collection, id)]
    return Response(status_code=204)
