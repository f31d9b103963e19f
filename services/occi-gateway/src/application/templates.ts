// os_tpl and resource_tpl mixins: the trusted images (image-sync) and the flavors (scheduler).
// They change rarely and every request needs them, so they are kept a short while.
import type { Credentials, LapisClients } from '../adapters/lapis';
import { osTemplate, resourceTemplate, type Templates } from '../domain/mapping';

const TEMPLATE_TTL_MS = 10_000;

export class TemplateCache {
  private templates?: { value: Promise<Templates>; at: number };

  constructor(private readonly lapis: LapisClients) {}

  async templatesFor(c: Credentials): Promise<Templates> {
    if (!this.templates || Date.now() - this.templates.at > TEMPLATE_TTL_MS) {
      const value = Promise.all([this.lapis.listImages(c), this.lapis.listFlavors(c)]).then(([images, flavors]) => ({
        images: images.map(osTemplate),
        flavors: flavors.map(resourceTemplate),
      }));
      this.templates = { value, at: Date.now() };
      value.catch(() => (this.templates = undefined));
    }
    return this.templates.value;
  }
}
