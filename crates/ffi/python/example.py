import asyncio, sys, passage_ffi as passage

async def main(directory, relay):
    await passage.create_profile(directory, "correct horse battery staple", None, relay, True)
    me = await passage.open_profile(directory, "correct horse battery staple", 900)
    print((await me.invite("Sam", None)).link)
    for contact in await me.contacts():
        print(contact.name, contact.status)
    await me.close()

asyncio.run(main(sys.argv[1], sys.argv[2]))
passage.shutdown()
