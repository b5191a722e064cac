# A user's session in headless Chromium (Debian's chromium and
# chromium-driver, driven by python3-selenium): log in, read, reply,
# write with an attachment and download it back, Junk and Not junk, and
# open a hostile message without anything running.
# argv: BASE_URL SCREENSHOT_DIR UPLOAD_FILE
import hashlib, socket, ssl, sys, threading, time, urllib.request
from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

base, shots, upload, trap_port = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])

# The trap: counts every connection (an image fetch, http or upgraded).
hits = [0]
trap = socket.socket()
trap.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
trap.bind(("127.0.0.1", trap_port))
trap.listen(16)
def count_hits():
    while True:
        conn, _ = trap.accept()
        hits[0] += 1
        conn.close()
threading.Thread(target=count_hits, daemon=True).start()
opts = webdriver.ChromeOptions()
for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--ignore-certificate-errors",
            "--disable-dev-shm-usage", "--window-size=1280,900"):
    opts.add_argument(arg)
from selenium.webdriver.chrome.service import Service
service = Service(executable_path="/usr/bin/chromedriver")
driver = webdriver.Chrome(options=opts, service=service)
driver.set_page_load_timeout(30)
step = [0]

def shot(name):
    step[0] += 1
    driver.save_screenshot(f"{shots}/{step[0]:02d}-{name}.png")

def no_alert():
    try:
        text = driver.switch_to.alert.text
        raise SystemExit(f"a script ran: alert {text!r}")
    except NoAlertPresentException:
        pass

def go(element):
    """Clicks something that loads a page, and waits for the new page."""
    # A mark on the old page's window: the new page has none. (Selenium's
    # staleness_of trips over this Chromium's error for a replaced node.)
    driver.execute_script("window.merpatiOldPage = true")
    element.click()
    WebDriverWait(driver, 20).until(lambda d: d.execute_script(
        "return window.merpatiOldPage === undefined && document.readyState === 'complete'"))

def button(label):
    for b in driver.find_elements(By.TAG_NAME, "button"):
        if b.text.strip() == label:
            return b
    raise SystemExit(f"no button {label!r} on {driver.current_url}")

def link(text):
    return driver.find_element(By.PARTIAL_LINK_TEXT, text)

def notice():
    found = driver.find_elements(By.CSS_SELECTOR, ".notice")
    if not found:
        raise SystemExit(f"no notice on {driver.current_url}:\n{driver.page_source}")
    return found[0].text

try:
    driver.get(base + "/")
    assert "/login" in driver.current_url, driver.current_url
    shot("login")
    driver.find_element(By.NAME, "user").send_keys("alice@localhost")
    driver.find_element(By.NAME, "password").send_keys("alice-pw")
    go(button("Log in"))
    assert "Lunch on Friday?" in driver.page_source, driver.page_source
    shot("inbox")

    # Read and reply.
    go(link("Lunch on Friday?"))
    assert "Shall we meet at noon?" in driver.find_element(By.CSS_SELECTOR, "pre.text").text
    shot("message")
    go(link("Reply"))
    assert driver.find_element(By.NAME, "to").get_attribute("value") == "Bob <bob@localhost>"
    assert driver.find_element(By.NAME, "subject").get_attribute("value") == "Re: Lunch on Friday?"
    body = driver.find_element(By.NAME, "body")
    assert "> Shall we meet at noon?" in body.get_attribute("value")
    body.send_keys("Noon is good.")
    shot("reply")
    go(button("Send"))
    assert "Message sent." in notice(), driver.page_source

    # A new message with an attachment.
    go(link("Compose"))
    driver.find_element(By.NAME, "to").send_keys("bob@localhost")
    driver.find_element(By.NAME, "subject").send_keys("The report")
    driver.find_element(By.NAME, "body").send_keys("Attached.")
    driver.find_element(By.NAME, "attachment").send_keys(upload)
    go(button("Send"))
    assert "Message sent." in notice(), driver.page_source

    # The copy in Sent has the attachment; download it with the session.
    go(link("Sent"))
    go(link("The report"))
    href = link("report.bin").get_attribute("href")
    cookie = "; ".join(f"{c['name']}={c['value']}" for c in driver.get_cookies())
    ctx = ssl._create_unverified_context()
    req = urllib.request.Request(href, headers={"Cookie": cookie})
    with urllib.request.urlopen(req, context=ctx) as resp:
        got = resp.read()
        assert resp.headers["Content-Disposition"].startswith("attachment"), resp.headers
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
    want = open(upload, "rb").read()
    assert hashlib.sha256(got).digest() == hashlib.sha256(want).digest(), (len(got), len(want))
    shot("sent")

    # Junk, then Not junk from the Junk folder.
    go(link("INBOX"))
    go(link("Cheap watches"))
    go(button("Junk"))
    assert "learnt as spam" in notice(), driver.page_source
    assert "Cheap watches" not in driver.page_source
    go(link("Junk"))
    assert "Cheap watches" in driver.page_source
    driver.find_element(By.CSS_SELECTOR, "input[name=uid]").click()
    go(button("Not junk"))
    assert "learnt as not spam" in notice(), driver.page_source
    go(link("INBOX"))
    assert "Cheap watches" in driver.page_source

    # The hostile message: nothing runs, the page keeps its title.
    go(link("hostile"))
    time.sleep(1)
    no_alert()
    assert driver.title.startswith("hostile"), driver.title
    frame = driver.find_element(By.CSS_SELECTOR, "iframe.html")
    driver.switch_to.frame(frame)
    assert "Dear user" in driver.page_source
    no_alert()
    driver.switch_to.default_content()
    assert driver.execute_script("return document.scripts.length") == 0
    shot("hostile")

    # A tracking image is not fetched until the user asks for images.
    go(link("INBOX"))
    go(link("newsletter"))
    assert "Remote images are blocked" in driver.page_source
    time.sleep(1.5)
    assert hits[0] == 0, f"the tracker was contacted {hits[0]} time(s)"
    go(link("Show images"))
    deadline = time.time() + 10
    while hits[0] == 0 and time.time() < deadline:
        time.sleep(0.1)
    assert hits[0] > 0, "asked-for images were not fetched (is the trap working?)"

    # A vacation reply, set in the settings.
    go(link("Settings"))
    driver.find_element(By.NAME, "vacation").click()
    driver.find_element(By.NAME, "vacation_subject").send_keys("Out of office")
    driver.find_element(By.NAME, "vacation_body").send_keys("Back on Monday.")
    go(button("Save vacation reply"))
    assert "Saved" in notice(), driver.page_source
    shot("settings")

    # The postmaster's pages: add an account, hold and release mail.
    driver.get(base + "/admin/accounts")
    driver.find_element(By.CSS_SELECTOR, "form.settings input[name=address]").send_keys("dave@localhost")
    driver.find_element(By.CSS_SELECTOR, "form.settings input[name=password]").send_keys("dave-pw-123")
    go(button("Add account"))
    assert "added dave" in notice(), driver.page_source
    go(link("Queue"))
    assert "someone@example.com" in driver.page_source, driver.page_source
    go(button("Hold"))
    assert "hold done" in notice(), driver.page_source
    assert "hold" in driver.find_element(By.CSS_SELECTOR, "table.messages tbody").text
    shot("queue")
    go(button("Release"))
    assert "release done" in notice(), driver.page_source
    driver.get(base + "/admin")
    assert driver.find_elements(By.CSS_SELECTOR, "svg.chart")
    shot("status")

    # A new password; the next login needs it.
    go(link("Settings"))
    driver.find_element(By.NAME, "current").send_keys("alice-pw")
    driver.find_element(By.NAME, "new").send_keys("alice-new-pw")
    driver.find_element(By.NAME, "again").send_keys("alice-new-pw")
    go(button("Change password"))
    assert "Password changed" in driver.page_source or "Settings" in driver.title, driver.page_source

    # Logging out ends the session.
    go(button("Log out"))
    assert "/login" in driver.current_url
    driver.get(base + "/mail?box=INBOX")
    assert "/login" in driver.current_url
    driver.find_element(By.NAME, "user").send_keys("alice@localhost")
    driver.find_element(By.NAME, "password").send_keys("alice-pw")
    go(button("Log in"))
    assert "Wrong address or password" in driver.page_source
    driver.find_element(By.NAME, "password").send_keys("alice-new-pw")
    go(button("Log in"))
    assert "INBOX" in driver.title, driver.title
    print("ok")
finally:
    driver.quit()
