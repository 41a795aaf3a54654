"""Which homes an owner sees: products proved with the device's serial and auth code, checked again on every read.

The proof is verified here, in the gateway, through metering's device registry (the service object this
process hosts, as the usage pages read metering's daily usage): identity records the attachment, metering
knows the devices, neither imports the other. A home stays visible only while the registry still holds the
same customer with the same auth code hash the owner proved: deleting the customer, re-issuing its auth
code or moving the serial to another customer ends what the owner sees at once, without waiting for an event.
"""

from __future__ import annotations

import unicodedata

from fastapi import Request

from ppa_identity.domain.owner import Home, HomeProof, Owner
from ppa_runtime.auth import LoginLocked

PROOF_FAILED = "システム製造番号または認証コードが正しくありません。"
PROOF_LOCKED = "認証コードの確認に続けて失敗したため、一時的に登録できません。15分ほど待ってから再度お試しください。"


class ProofRefused(Exception):
    """The serial and auth code do not prove a home (one message for every reason)."""


def _metering(request: Request):
    return request.app.state.host.service("metering")


def has_metering(request: Request) -> bool:
    return any(s.name == "metering" for s in request.app.state.host.services)


async def prove(request: Request, owner_id: str, serial: str, auth_code: str, ip: str) -> HomeProof:
    """The registry's answer for a matching pair; ProofRefused (counted like a failed login) otherwise,
    LoginLocked after too many recent failures of this owner or client."""
    throttle = request.app.state.host.service("identity").owners.home_proofs
    if await throttle.locked(owner_id, ip):
        raise LoginLocked()
    code = unicodedata.normalize("NFKC", auth_code).strip()
    found = await _metering(request).devices.authenticate(serial, code) if code and has_metering(request) else None
    if found is None:
        await throttle.failed(owner_id, ip)
        raise ProofRefused(PROOF_FAILED)
    return HomeProof(serial_number=serial, agency_id=found["agency_id"], customer_number=found["customer_number"],
                     auth_code_hash=found["auth_code_hash"])


async def proved_homes(request: Request, owner: Owner) -> list[Home]:
    """The owner's homes whose proof still holds, in the order they were attached."""
    if not owner.homes or not has_metering(request):
        return []
    devices = await _metering(request).devices.by_serials(sorted({h.serial_number for h in owner.homes.values()}))
    return sorted((h for h in owner.homes.values() if h.still_proved(devices.get(h.serial_number))),
                  key=lambda h: h.attached_at)


async def proved_home(request: Request, owner: Owner, product_id: str) -> Home | None:
    """One of the owner's homes whose proof still holds, else None (a 404 for the pages)."""
    return next((h for h in await proved_homes(request, owner) if h.product_id == product_id), None)
