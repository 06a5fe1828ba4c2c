"""The Python bindings against real passage-relay processes: what an app built on
them does, from creating profiles to the panic wipe, and the errors it can meet.

Every wait is for an event, bounded by WAIT_MS per event and by a count."""
import asyncio
import os
import pathlib
import subprocess
import sys

import pytest

from conftest import WAIT_MS, passage_ffi as passage

REAL = "correct horse battery staple"
DURESS = "tuesday orange lighthouse"
E = passage.PassageError


async def wait_for(me, what, wanted, limit=500):
    """The first event `wanted` accepts; fails on a problem event or a long silence."""
    for _ in range(limit):
        event = await me.next_event(WAIT_MS)
        assert event is not None, f"waited in vain for {what}"
        assert not event.is_problem(), f"{what}: {event.message}"
        if wanted(event):
            return event
    raise AssertionError(f"too many events while waiting for {what}")


# TCP: a relay killed mid-test closes its TCP connections at once, while a QUIC
# connection to it waits out its idle timeout before the client reconnects.
TCP = passage.OpenOptions(lock_after_secs=None, transport="tcp", socks5=None, decoy=False)


async def open_tcp(directory, passphrase=REAL):
    return await passage.open_profile_with(directory, passphrase, TCP)


async def new_profile(root, name, relay, duress=DURESS):
    directory = str(root / name)
    await passage.create_profile(directory, REAL, duress, relay.address, False)
    return directory, await open_tcp(directory)


async def connect(alice, bob):
    invitation = await alice.invite("Bob", None)
    assert invitation.link.startswith("passage:")
    accepted = await bob.accept(invitation.link, "Alice")
    assert accepted.status == passage.Status.SENT
    bob_id, alice_id = invitation.contact_id, accepted.contact_id
    await wait_for(alice, "Bob connected", lambda e: e.is_connected() and e.contact_id == bob_id)
    await wait_for(bob, "Alice connected", lambda e: e.is_connected() and e.contact_id == alice_id)
    return bob_id, alice_id


async def texts(me, count, sender):
    got = []
    for _ in range(500):
        if len(got) == count:
            break
        event = await wait_for(me, f"{count} texts", lambda e: e.is_message())
        assert event.contact_id == sender
        got.append(event.text)
    return got


def test_two_people_through_a_whole_life(tmp_path, relay):
    async def main():
        alice_dir, alice = await new_profile(tmp_path, "alice", relay)
        bob_dir, bob = await new_profile(tmp_path, "bob", relay)
        bob_id, alice_id = await connect(alice, bob)

        # Messages both ways while Bob's listener waits for events the whole time.
        listening = asyncio.ensure_future(texts(bob, 3, alice_id))
        for i in range(3):
            sent = await bob.send_text(alice_id, f"bob {i}")
            assert sent.status == passage.Status.SENT
            await alice.send_text(bob_id, f"alice {i}")
        assert await asyncio.wait_for(listening, 60) == ["alice 0", "alice 1", "alice 2"]
        assert await texts(alice, 3, bob_id) == ["bob 0", "bob 1", "bob 2"]

        # Offline delivery: Bob closes; Alice writes; Bob opens and gets it.
        await bob.close()
        await alice.send_text(bob_id, "while you were offline")
        bob = await open_tcp(bob_dir)
        assert await texts(bob, 1, alice_id) == ["while you were offline"]

        # The relay restarts (same port, same data): both reconnect by themselves.
        relay.restart()
        await alice.send_text(bob_id, "after the restart")
        assert await texts(bob, 1, alice_id) == ["after the restart"]
        await bob.send_text(alice_id, "got it")
        assert await texts(alice, 1, bob_id) == ["got it"]

        # Verify by safety number: both see the same digits; a wrong one is refused.
        number = await alice.safety_number(bob_id)
        assert number == await bob.safety_number(alice_id)
        with pytest.raises(E.SafetyNumberMismatch) as refused:
            await alice.verify(bob_id, "0" * len(number))
        assert "does not match" in str(refused.value)
        await alice.verify(bob_id, number)
        [contact] = await alice.contacts()
        assert (contact.id, contact.name, contact.status, contact.verified) == (
            bob_id, "Bob", "connected", True)

        # A disappearing timer: Bob adopts it; the message goes from both histories.
        await alice.set_disappear_timer(bob_id, 2)
        timer = await wait_for(bob, "the timer", lambda e: e.is_timer_changed())
        assert (timer.contact_id, timer.seconds) == (alice_id, 2)
        await alice.send_text(bob_id, "gone soon")
        assert await texts(bob, 1, alice_id) == ["gone soon"]
        async def kept(me, contact):
            return any(h.text == "gone soon" for h in await me.history(contact))

        for _ in range(300):
            if not await kept(bob, alice_id) and not await kept(alice, bob_id):
                break
            await asyncio.sleep(0.1)
        assert not await kept(bob, alice_id)
        assert not await kept(alice, bob_id)

        # The duress passphrase opens the decoy; the real profile is gone after it.
        await bob.close()
        decoy = await passage.open_profile(bob_dir, DURESS, None)
        assert await decoy.contacts() == []
        await decoy.close()
        with pytest.raises(E.WrongPassphrase):
            await passage.open_profile(bob_dir, REAL, None)

        # The panic wipe: Wiped is the last event; nothing opens afterwards.
        await alice.panic_wipe()
        await wait_for(alice, "the wipe", lambda e: e.is_wiped())
        assert await alice.next_event(2_000) is None
        with pytest.raises(E.Wiped):
            await alice.contacts()
        with pytest.raises((E.NoProfile, E.WrongPassphrase)):
            await passage.open_profile(alice_dir, REAL, None)
        assert not os.path.exists(alice_dir) or os.listdir(alice_dir) == []

    asyncio.run(main())


def test_every_error_is_a_typed_exception_with_a_clear_message(tmp_path, relay):
    async def main():
        def check(raised, kind, words):
            assert isinstance(raised.value, kind), repr(raised.value)
            assert isinstance(raised.value, passage.PassageError)
            assert words in str(raised.value), str(raised.value)

        missing = str(tmp_path / "nobody")
        with pytest.raises(E.NoProfile) as r:
            await passage.open_profile(missing, REAL, None)
        check(r, E.NoProfile, "no profile")
        with pytest.raises(E.InvalidArgument) as r:
            await passage.create_profile(str(tmp_path / "x"), REAL, None, "not a relay", False)
        check(r, E.InvalidArgument, "passage://")

        alice_dir = str(tmp_path / "alice")
        await passage.create_profile(alice_dir, REAL, None, relay.address, False)
        with pytest.raises(E.NoDecoy) as r:
            await passage.open_decoy(alice_dir, REAL)
        check(r, E.NoDecoy, "no decoy")
        alice = await open_tcp(alice_dir)
        with pytest.raises(E.ProfileExists) as r:
            await passage.create_profile(alice_dir, REAL, None, relay.address, False)
        check(r, E.ProfileExists, "exists")
        with pytest.raises(E.Busy) as r:
            await passage.open_profile(alice_dir, REAL, None)
        check(r, E.Busy, "open elsewhere")

        with pytest.raises(E.InvalidArgument) as r:
            await alice.send_text("zz", "hi")
        check(r, E.InvalidArgument, "hex digits")
        with pytest.raises(E.NoSuchContact) as r:
            await alice.send_text("00" * 16, "hi")
        check(r, E.NoSuchContact, "no such contact")
        invitation = await alice.invite("Bob", None)
        with pytest.raises(E.NameTaken) as r:
            await alice.invite("Bob", None)
        check(r, E.NameTaken, "exists already")
        with pytest.raises(E.InvalidName) as r:
            await alice.invite(" ", None)
        check(r, E.InvalidName, "contact names")
        with pytest.raises(E.NotConnected) as r:
            await alice.send_text(invitation.contact_id, "too early")
        check(r, E.NotConnected, "not accepted")
        with pytest.raises(E.InvalidInvitation) as r:
            await alice.accept("passage:i1.garbage", "Eve")
        check(r, E.InvalidInvitation, "invitation")

        bob_dir, bob = await new_profile(tmp_path, "bob", relay)
        accepted = await bob.accept(invitation.link, "Alice")
        with pytest.raises(E.TooLarge) as r:
            await bob.send_text(accepted.contact_id, "x" * 100_000)
        check(r, E.TooLarge, "limit")
        with pytest.raises(E.PassphraseRefused) as r:
            await bob.change_passphrase("not the passphrase", "a new long passphrase here")
        check(r, E.PassphraseRefused, "wrong")

        await bob.lock()
        assert bob.is_locked()
        with pytest.raises(E.Locked) as r:
            await bob.contacts()
        check(r, E.Locked, "locked")
        with pytest.raises(E.WrongPassphrase) as r:
            await bob.unlock("not it")
        check(r, E.WrongPassphrase, "wrong passphrase")
        await bob.unlock(REAL)
        assert len(await bob.contacts()) == 1

        await alice.close()
        with pytest.raises(E.Closed) as r:
            await alice.contacts()
        check(r, E.Closed, "closed")
        await bob.close()

    asyncio.run(main())


def test_an_sos_reaches_every_trusted_contact_and_no_other(tmp_path, relay):
    async def main():
        _, amal = await new_profile(tmp_path, "amal", relay)
        _, yusuf = await new_profile(tmp_path, "yusuf", relay)
        _, lena = await new_profile(tmp_path, "lena", relay)
        yusuf_id, amal_at_yusuf = await connect(amal, yusuf)
        invitation = await amal.invite("Lena", None)
        accepted = await lena.accept(invitation.link, "Amal")
        lena_id = invitation.contact_id
        await wait_for(amal, "Lena connected", lambda e: e.is_connected() and e.contact_id == lena_id)
        await wait_for(lena, "Amal connected", lambda e: e.is_connected())

        with pytest.raises(E.NoTrustedContacts) as r:
            await amal.send_sos("help")
        assert "trusted" in str(r.value)
        await amal.set_trusted(yusuf_id, True)
        assert {c.name: c.trusted for c in await amal.contacts()} == {"Bob": True, "Lena": False}
        [copy] = await amal.send_sos("taken at the border post")
        assert (copy.contact_id, copy.sent.status) == (yusuf_id, passage.Status.SENT)
        sos = await wait_for(yusuf, "the SOS", lambda e: e.is_sos())
        assert (sos.contact_id, sos.text) == (amal_at_yusuf, "taken at the border post")
        [entry] = [h for h in await yusuf.history(amal_at_yusuf) if h.sos]
        assert entry.text == "taken at the border post"
        await amal.send_text(lena_id, "just a text")
        event = await wait_for(lena, "the text", lambda e: e.is_message() or e.is_sos())
        assert event.is_message() and event.text == "just a text"
        for me in (amal, yusuf, lena):
            await me.close()

    asyncio.run(main())


def test_the_readme_example_runs(tmp_path, relay):
    here = pathlib.Path(__file__).resolve().parent.parent
    example = (here / "example.py").read_text()
    readme = (here.parent.parent.parent / "README.md").read_text()
    assert example.strip() in readme, "README shows example.py as it is"
    env = dict(os.environ, PYTHONPATH=os.environ["PASSAGE_PY_BINDINGS"])
    out = subprocess.run(
        [sys.executable, str(here / "example.py"), str(tmp_path / "me"), relay.address],
        capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 2, (out.stdout, out.stderr)
    link, contact = lines
    assert link.startswith("passage:")
    assert contact == "Sam invited"
