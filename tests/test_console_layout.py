"""Every console page, for every role, on a 390 px phone: nothing wider than the screen.

The pages come from `hub.pages.PAGES`, so a page added later is walked too (and a path
parameter this test cannot fill fails it rather than skipping the page)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from hub import pages
from hub.testing import ADMIN, ADMIN_PASSWORD, running_hub
from tests.browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, needs_chromium
from tests.console_world import OWN_PASSWORD, PEOPLE, World, build

#: Pages that are not HTML for a person (a file, a fragment console.js swaps in).
NOT_PAGES = {
    "/bulletins/{id}/preview/{file}",
    "/devices/groups/{id}/batch",
    "/devices/{id}/commands",
    "/devices/{id}/frame",
    "/bulletins/media/{sha256}",
    "/devices/table",
    "/audit.csv",
    "/reports.csv",
    "/login",
}

#: Reports the elements that stick out past the right edge, so a failure says what to fix.
OVERFLOW_JS = """() => {
  const width = document.documentElement.clientWidth;
  const wide = [];
  for (const el of document.querySelectorAll('body *')) {
    const box = el.getBoundingClientRect();
    if (box.width > 0 && box.right > width + 1) {
      let inside = false;
      for (let p = el.parentElement; p; p = p.parentElement) {
        const o = getComputedStyle(p).overflowX;
        if (o === 'auto' || o === 'scroll' || o === 'hidden') { inside = true; break; }
      }
      const cls = typeof el.className === 'string' && el.className ? '.' + el.className : '';
      if (!inside) wide.push(el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') + cls +
        ' ' + Math.round(box.right));
    }
  }
  return {scroll: document.documentElement.scrollWidth, width, wide: wide.slice(0, 8)};
}"""


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    async with running_hub(tmp_path) as hub:
        await hub.login()
        yield await build(hub)


def page_paths(world: World, username: str) -> list[str]:
    """Each GET page with its parameters filled from the world."""
    fill = {
        "{id}": {
            "/emergency/{id}": world.ids["emergency"],
            "/bulletins/{id}": world.ids["published"],
            "/bulletins/{id}/edit": world.ids["draft"],
            "/bulletins/{id}/preview": world.ids["published"],
            "/bulletins/{id}/delete": world.ids["draft"],
            "/devices/groups/{id}": world.ids["group"],
            "/devices/{id}/code": world.ids["device"],
            "/devices/{id}": world.ids["device"],
        },
        "{code}": {"/communes/{code}": "00001", "/communes/{code}/days": "00001"},
        "{sha256}": {"/bulletins/media/{sha256}/delete": world.ids["media"]},
        "{username}": {"/users/{username}": username},
    }
    paths = []
    for method, path, _handler in pages.PAGES:
        if method != "GET" or path in NOT_PAGES:
            continue
        for param in re.findall(r"{\w+}", path):
            assert path in fill.get(param, {}), f"the layout test cannot fill {path}"
            path = path.replace(param, fill[param][path])
        paths.append(path)
    # The returned bulletin's page (with its comment) and the draft's, as their owner sees them.
    paths += [f"/bulletins/{world.ids['returned']}", f"/bulletins/{world.ids['draft']}"]
    return paths


async def log_in(page: Any, base: str, username: str, password: str) -> None:
    await page.goto(base + "/login")
    await page.fill("input[name=username]", username)
    await page.fill("input[name=password]", password)
    await page.click("button[type=submit]")
    await page.wait_for_url(base + "/")


@needs_chromium
async def test_no_console_page_is_wider_than_a_phone(world: World) -> None:
    from playwright.async_api import async_playwright

    base = str(world.hub.client.make_url("/")).rstrip("/")
    accounts = [(ADMIN, ADMIN_PASSWORD)] + [(name, OWN_PASSWORD) for name, _r, _u in PEOPLE]
    too_wide: list[str] = []
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            for username, password in accounts:
                context = await browser.new_context(viewport={"width": 390, "height": 844})
                page = await context.new_page()
                await log_in(page, base, username, password)
                for path in page_paths(world, username):
                    await page.goto(base + path)
                    found = await page.evaluate(OVERFLOW_JS)
                    if found["scroll"] > found["width"] or found["wide"]:
                        too_wide.append(f"{username} {path}: {found}")
                        shot = re.sub(r"[^a-z0-9]+", "-", f"{username}{path}").strip("-")
                        await page.screenshot(
                            path=ARTIFACTS / f"too-wide-{shot}.png", full_page=True
                        )
                await context.close()
        finally:
            await browser.close()
    assert not too_wide, "\n".join(too_wide)


@needs_chromium
async def test_reports_long_category_names_get_the_full_width(world: World) -> None:
    """At 1366 px the categories' table spans the report grid (their names are sentences;
    in one narrow column the page grew to 4,000 px)."""
    from playwright.async_api import async_playwright

    base = str(world.hub.client.make_url("/")).rstrip("/")
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = await browser.new_context(viewport={"width": 1366, "height": 768})
            page = await context.new_page()
            await log_in(page, base, ADMIN, ADMIN_PASSWORD)
            await page.goto(base + "/reports")
            grid = await page.locator(".report-grid").bounding_box()
            wide = await page.locator("#by-category").bounding_box()
            assert grid is not None and wide is not None
            assert wide["width"] >= grid["width"] - 1, (wide, grid)
            await page.screenshot(path=ARTIFACTS / "reports-1366.png", full_page=True)
        finally:
            await browser.close()
