"""Use rowplay's page in headless Chromium: search, tap, brightness, screenshot.

Usage: python page.py URL SCREENSHOT.png
Run inside a network namespace with only lo (the test makes one), so the
browser's background traffic cannot leave. Prints one JSON line at the end.
"""
import json
import os
import sys
import time

os.environ["SE_OFFLINE"] = "true"  # never let Selenium Manager download

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

url, shot = sys.argv[1], sys.argv[2]
opts = Options()
opts.binary_location = "/usr/bin/chromium"
for a in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
          "--disable-background-networking", "--disable-component-update",
          "--user-data-dir=" + os.path.join(os.path.dirname(shot), "chromium-profile"),
          "--window-size=412,1000", "--force-device-scale-factor=1"]:
    opts.add_argument(a)
d = webdriver.Chrome(service=Service(executable_path="/usr/bin/chromedriver"), options=opts)
try:
    wait = WebDriverWait(d, 20)
    d.get(url)
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#arrays li")) > 0)
    listed = d.find_element(By.ID, "count").text
    box = d.find_element(By.ID, "search")
    box.send_keys("wave_3")
    wait.until(lambda d: d.find_element(By.ID, "count").text == "1 array")
    d.find_element(By.CSS_SELECTOR, "#arrays li").click()
    wait.until(lambda d: "wave_3" in d.find_element(By.ID, "now").text)
    # A status request already on its way when the slider moves (the page
    # asks every second) must not throw the slider back to the old value.
    d.execute_script(
        "refreshStatus();"
        "const s = document.getElementById('brightness');"
        "s.value = 40; s.dispatchEvent(new Event('input'));"
        "s.dispatchEvent(new Event('change'));")
    time.sleep(0.6)  # the slider's debounce, then one status refresh
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys(Keys.DELETE)
    wait.until(lambda d: d.find_element(By.ID, "count").text == listed)
    wait.until(lambda d: d.execute_script(
        "return [...document.images].every(i => i.complete && i.naturalWidth > 0)"))
    wait.until(lambda d: d.execute_script(
        "return document.getElementById('strip').width > 1"))
    time.sleep(1.2)  # a status refresh shows the new brightness
    d.save_screenshot(shot)
    print(json.dumps({
        "listed": listed,
        "now": d.find_element(By.ID, "now").text,
        "brightness": d.find_element(By.ID, "brightness-value").text,
        "message": d.find_element(By.ID, "message").text,
        "playing": len(d.find_elements(By.CSS_SELECTOR, "#arrays li.playing")),
    }), flush=True)
finally:
    d.quit()
