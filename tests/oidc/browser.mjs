// A browser without JavaScript for the sign-in scripts: it keeps cookies,
// follows no redirect, reads the sign-in page's form and posts it back as
// a person would, with the user's credentials.

export class Browser {
  constructor(fetchFn = fetch) {
    this.fetch = fetchFn
    this.cookies = new Map()
  }

  keep(response) {
    for (const line of response.headers.getSetCookie()) {
      const [pair, ...attributes] = line.split(';')
      const at = pair.indexOf('=')
      const name = pair.slice(0, at).trim()
      const value = pair.slice(at + 1).trim()
      const expired = attributes.some((a) => /^\s*max-age=0\s*$/i.test(a))
      if (value === '' || expired) this.cookies.delete(name)
      else this.cookies.set(name, value)
    }
  }

  headers(extra = {}) {
    const cookie = [...this.cookies].map(([n, v]) => `${n}=${v}`).join('; ')
    return cookie ? { ...extra, cookie } : extra
  }

  async get(url) {
    const response = await this.fetch(url, { headers: this.headers(), redirect: 'manual' })
    this.keep(response)
    return response
  }

  // A form posted from a page carries that page's origin, as a browser's does.
  async post(url, fields, origin) {
    const response = await this.fetch(url, {
      method: 'POST',
      headers: this.headers({
        'content-type': 'application/x-www-form-urlencoded',
        origin,
      }),
      body: new URLSearchParams(fields),
      redirect: 'manual',
    })
    this.keep(response)
    return response
  }

  // Opens the authorization URL, signs in on its page and returns the
  // redirect's Location (the client's callback URL), never following it.
  async signIn(authorizationUrl, username, password) {
    const page = await this.get(authorizationUrl)
    const html = await page.text()
    if (page.status !== 200) {
      throw new Error(`the sign-in page: ${page.status} ${page.headers.get('location') ?? ''} ${html}`)
    }
    const { action, fields } = formOf(html, authorizationUrl)
    const response = await this.post(action, [...fields, ['username', username], ['password', password]],
      new URL(action).origin)
    const body = await response.text()
    const location = response.headers.get('location')
    if (response.status !== 303 || !location) {
      throw new Error(`signing in: ${response.status} ${body}`)
    }
    return location
  }

  // Opens the authorization URL as a signed-in user, allows the
  // application on its page, and returns the page and the redirect's
  // Location.
  async allow(authorizationUrl) {
    const page = await this.get(authorizationUrl)
    const html = await page.text()
    if (page.status !== 200) {
      throw new Error(`the consent page: ${page.status} ${page.headers.get('location') ?? ''} ${html}`)
    }
    const { action, fields } = formOf(html, authorizationUrl)
    const response = await this.post(action, [...fields, ['continue', '1']], new URL(action).origin)
    const location = response.headers.get('location')
    if (response.status !== 303 || !location) {
      throw new Error(`allowing: ${response.status} ${await response.text()}`)
    }
    return { html, location }
  }
}

const unescape = (s) => s
  .replaceAll('&quot;', '"').replaceAll('&#39;', "'")
  .replaceAll('&lt;', '<').replaceAll('&gt;', '>').replaceAll('&amp;', '&')

const attribute = (tag, name) => {
  const match = new RegExp(`\\s${name}="([^"]*)"`).exec(tag)
  return match ? unescape(match[1]) : undefined
}

// The form's absolute action and its hidden fields, in order.
export function formOf(html, pageUrl) {
  const form = /<form\b[^>]*>/.exec(html)
  if (!form) throw new Error(`no form on the page: ${html}`)
  const action = new URL(attribute(form[0], 'action') ?? '', pageUrl).href
  const fields = [...html.matchAll(/<input\b[^>]*>/g)]
    .map((m) => m[0])
    .filter((tag) => attribute(tag, 'type') === 'hidden')
    .map((tag) => [attribute(tag, 'name'), attribute(tag, 'value') ?? ''])
  return { action, fields }
}
