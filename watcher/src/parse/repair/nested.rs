//! nested.rs: the nested-items repair of `repair` (an `<item>` illegally nested inside another is
//! moved after it when it has content of its own), and the quick look that spares almost every
//! feed its tag scan.

use std::ops::Range;

use std::sync::LazyLock;

use memchr::memmem::Finder;

use super::{Edits, Format, Repair};
use crate::parse::needles;
use crate::parse::tags::{self, Tag};
use crate::work::WorkBudget;

static ITEM: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new("item"));

/// Whether an `<item>` may open inside another: a substring look, far cheaper than the tag scan,
/// that is never wrongly no. Comments, CDATA sections and processing instructions are skipped as
/// the scan skips them; what it cannot tell cheaply (a prefixed `item`, a DOCTYPE or another `<!`
/// construct, an unterminated tag) answers yes and leaves it to the scan.
fn may_nest_items(text: &str) -> bool {
    let bytes = text.as_bytes();
    let find = |from: usize, needle: &Finder<'_>| {
        needle
            .find(&bytes[from..])
            .map_or(usize::MAX, |at| from + at)
    };
    let item = &*ITEM;
    let (bang_needle, pi_needle) = (&*needles::MARKUP_DECLARATION, &*needles::INSTRUCTION);
    let (mut bang, mut pi) = (find(0, bang_needle), find(0, pi_needle));
    let mut open = false;
    let mut pos = 0;
    while pos < text.len() {
        // The stretch up to the next `<!` or `<?` holds only tags and text.
        if bang < pos {
            bang = find(pos, bang_needle);
        }
        if pi < pos {
            pi = find(pos, pi_needle);
        }
        let special = bang.min(pi);
        let end = special.min(text.len());
        for at in item.find_iter(&bytes[pos..end]) {
            let at = pos + at;
            let closing = match bytes[..at] {
                [.., b'<', b'/'] => true,
                [.., b'<'] => false,
                [.., b':'] => return true,
                _ => continue,
            };
            match bytes.get(at + 4) {
                Some(b) if b.is_ascii_whitespace() || matches!(b, b'>' | b'/') => {}
                Some(_) => continue,
                None => return true,
            }
            if closing {
                open = false;
                continue;
            }
            let Some(gt) = tags::find_tag_end(&bytes[at..end]).map(|gt| at + gt) else {
                return true;
            };
            if bytes[gt - 1] == b'/' {
                continue;
            }
            if open {
                return true;
            }
            open = true;
        }
        if special == usize::MAX {
            break;
        }
        let rest = &text[special..];
        let close = if rest.starts_with("<!--") {
            &needles::COMMENT_END
        } else if rest.starts_with("<![CDATA[") {
            &needles::CDATA_END
        } else if rest.starts_with("<?") {
            &needles::INSTRUCTION_END
        } else {
            return true;
        };
        match needles::end_of(rest.as_bytes(), 2, close) {
            Some(end) => pos = special + end,
            None => return true,
        }
    }
    false
}

/// Moves each `<item>` nested inside another item (and having child elements) to just after the
/// item that contains it.
pub(super) fn hoist_nested_items(
    text: &str,
    budget: &WorkBudget,
    format: Format,
    repairs: &mut Vec<Repair>,
) -> Option<String> {
    if !matches!(format, Format::Rss | Format::Rdf) || !may_nest_items(text) {
        return None;
    }
    let mut edits = Edits::default();
    let mut moved = 0;
    let mut depth = 0usize;
    // The depth of the item we are in, and the nested items found in it so far.
    let mut outer: Option<usize> = None;
    let mut nested: Vec<Range<usize>> = Vec::new();
    // The nested item being scanned: its depth, start and whether it has a child element.
    let mut inner: Option<(usize, usize, bool)> = None;

    for tag in tags::tags(text, budget) {
        match tag {
            Tag::Start(tag) => {
                if let Some((inner_depth, _, has_child)) = &mut inner {
                    *has_child |= depth == *inner_depth;
                }
                if tag.local_name() == "item" && !tag.empty {
                    match (outer, inner) {
                        (None, _) => outer = Some(depth + 1),
                        (Some(_), None) => inner = Some((depth + 1, tag.span.start, false)),
                        _ => {}
                    }
                }
                if !tag.empty {
                    depth += 1;
                }
            }
            Tag::End { name, span } => {
                let is_item = tags::local_name(name) == "item";
                if let (true, Some((inner_depth, start, has_child))) = (is_item, inner) {
                    if depth == inner_depth {
                        if has_child {
                            nested.push(start..span.end);
                        }
                        inner = None;
                    }
                } else if is_item && outer == Some(depth) {
                    for range in nested.drain(..) {
                        edits.replace(span.end..span.end, &text[range.clone()]);
                        edits.replace(range, "");
                        moved += 1;
                    }
                    outer = None;
                }
                depth = depth.saturating_sub(1);
            }
        }
    }
    if moved > 0 {
        repairs.push(Repair::NestedItems { moved });
    }
    edits.apply(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_quick_look_says_no_only_when_no_item_opens_inside_another() {
        let no = [
            "<?xml version=\"1.0\"?><rss><channel><item><title>a</title></item>\
             <item><title>b</title><description><![CDATA[<item>x</item> <p>]]></description>\
             </item><items/><itemRef>1</itemRef></channel></rss>",
            "<rdf:RDF><item rdf:about=\"http://e/1?a>b\"><title>t</title></item>\
             <item rdf:about='2'><!-- <item> --></item></rdf:RDF>",
            "<rss><channel><item><title>a</title><item/></item></channel></rss>",
            "<rss><channel><item>a</item>\n<item\n>b</item></channel></rss>",
        ];
        for text in no {
            assert!(!may_nest_items(text), "{text}");
        }
        let yes = [
            "<rss><channel><item><title>a</title><item><title>b</title></item></item></channel></rss>",
            // A `</item>` hidden in CDATA does not close the item.
            "<rss><channel><item><description><![CDATA[</item>]]></description>\
             <item>b</item></item></channel></rss>",
            // What it cannot tell cheaply.
            "<!DOCTYPE rss><rss><channel><item>a</item></channel></rss>",
            "<rss><channel><rss:item>a</rss:item></channel></rss>",
            "<rss><channel><item><![CDATA[ never closed",
            "<rss><channel><item",
        ];
        for text in yes {
            assert!(may_nest_items(text), "{text}");
        }
    }

    #[test]
    fn a_feed_whose_quick_look_says_no_is_left_untouched_by_the_scan_too() {
        let text = "<rss version=\"2.0\"><channel><item><title>a</title></item></channel></rss>";
        let mut repairs = Vec::new();
        let budget = WorkBudget::unlimited();
        assert!(hoist_nested_items(text, &budget, Format::Rss, &mut repairs).is_none());
        assert_eq!(budget.used(), 0, "no tag scan");
        assert!(repairs.is_empty());
    }
}
