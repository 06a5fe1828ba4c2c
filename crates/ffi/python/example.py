import asyncio, sys
import passage_ffi as passage

async def main(directory, relay):
    await passage.create_profile(directory, "correct horse battery staple", None, relay, True)
    me = await passage.open_profile(directory, "correct horse battery staple", 900)
    invitation = await me.invite("Sam", None)
    print(invitation.link)
    for contact in await me.contacts():
        print(contact.name, contact.status)
    await me.close()

asyncio.run(main(sys.argv[1], sys.argv[2]))
