"""Drive a rowplay node with the real `wled` client (what Home Assistant uses).

Usage: python wled_client.py HOST   (the client always connects to port 80)
Prints one JSON line per step; any exception fails the run.
"""
import asyncio
import json
import sys

from wled import WLED


def summary(step, d):
    return json.dumps({
        "step": step,
        "ver": str(d.info.version),
        "brand": d.info.brand,
        "product": d.info.product,
        "leds": d.info.leds.count,
        "on": d.state.on,
        "bri": d.state.brightness,
        "preset": d.state.preset_id,
        "presets": {str(k): p.name for k, p in d.presets.items()},
        "effects": len(d.effects),
    })


async def main(host):
    async with WLED(host) as w:
        print(summary("first update", await w.update()), flush=True)
        await w.master(on=False)
        print(json.dumps({"step": "off"}), flush=True)
        await w.master(on=True, brightness=128)
        print(json.dumps({"step": "on 128"}), flush=True)
        await w.preset(preset=2)
        print(json.dumps({"step": "preset 2"}), flush=True)
        await w.preset(preset="wave_4")
        print(json.dumps({"step": "preset wave_4"}), flush=True)
        print(summary("second update", await w.update()), flush=True)
        print(summary("third update", await w.update()), flush=True)


asyncio.run(main(sys.argv[1]))
