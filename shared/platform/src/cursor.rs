//! The cursor of every cursor-paginated list: the (created_at, id) of the last item of a page,
//! opaque to clients (base64url).

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use chrono::{DateTime, Datelike, Utc};
use uuid::Uuid;

/// A position in a list ordered by (created_at, id) descending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub at: DateTime<Utc>,
    pub id: Uuid,
}

/// The cursor text could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the cursor is not valid")]
pub struct InvalidCursor;

/// Largest page a client may ask for.
pub const MAX_LIMIT: i64 = 100;
/// Page size when the client names none.
pub const DEFAULT_LIMIT: i64 = 20;

impl Cursor {
    /// Before every item (the first page).
    pub fn start() -> Self {
        Self {
            at: DateTime::<Utc>::MAX_UTC,
            id: Uuid::max(),
        }
    }

    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("{}|{}", self.at.timestamp_micros(), self.id))
    }

    pub fn decode(text: &str) -> Result<Self, InvalidCursor> {
        let text = URL_SAFE_NO_PAD
            .decode(text)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or(InvalidCursor)?;
        let (micros, id) = text.split_once('|').ok_or(InvalidCursor)?;
        // Within PostgreSQL's timestamp range and this product's lifetime.
        let at = micros
            .parse()
            .ok()
            .and_then(DateTime::<Utc>::from_timestamp_micros)
            .filter(|at| (2000..=9999).contains(&at.year()))
            .ok_or(InvalidCursor)?;
        Ok(Self {
            at,
            id: id.parse().map_err(|_| InvalidCursor)?,
        })
    }
}

/// Why a list request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvalidPage {
    #[error("the cursor is not valid")]
    Cursor,
    #[error("the limit is not between 1 and {MAX_LIMIT}")]
    Limit,
}

/// What a client asked of a list: where to start and how many (`?cursor=&limit=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub after: Cursor,
    pub limit: i64,
}

impl PageRequest {
    /// Checks the query: `limit` 1 to [`MAX_LIMIT`] (default [`DEFAULT_LIMIT`]), `cursor` one of
    /// ours (absent: the first page).
    pub fn parse(cursor: Option<&str>, limit: Option<i64>) -> Result<Self, InvalidPage> {
        let limit = limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(InvalidPage::Limit);
        }
        let after = match cursor {
            Some(text) => Cursor::decode(text).map_err(|_| InvalidPage::Cursor)?,
            None => Cursor::start(),
        };
        Ok(Self { after, limit })
    }

    /// How many rows to fetch: one more than the page, to know whether another follows.
    pub fn fetch(&self) -> i64 {
        self.limit + 1
    }

    /// The page of `fetched` (see [`PageRequest::fetch`]).
    pub fn page<T>(&self, fetched: Vec<T>, position: impl Fn(&T) -> Cursor) -> Page<T> {
        Page::from_overfetch(fetched, self.limit, position)
    }
}

/// One page of a list and the cursor of the next, if any.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// Cuts `items` (fetched with `limit + 1`) to `limit` and derives the next cursor from the
    /// last item kept.
    pub fn from_overfetch(mut items: Vec<T>, limit: i64, position: impl Fn(&T) -> Cursor) -> Self {
        let next_cursor = if items.len() as i64 > limit {
            items.truncate(limit.max(0) as usize);
            items.last().map(|last| position(last).encode())
        } else {
            None
        };
        Self { items, next_cursor }
    }

    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            next_cursor: self.next_cursor,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let cursor = Cursor {
            at: DateTime::from_timestamp_micros(1_780_000_000_123_456).unwrap(),
            id: Uuid::now_v7(),
        };
        assert_eq!(Cursor::decode(&cursor.encode()), Ok(cursor));
        for bad in ["", "!!", "bm90aGluZw", "MTIzfG5vdC1hLXV1aWQ"] {
            assert_eq!(Cursor::decode(bad), Err(InvalidCursor), "{bad}");
        }
    }

    #[test]
    fn a_page_keeps_limit_items_and_points_after_the_last() {
        let ids: Vec<Cursor> = (0..3)
            .map(|i| Cursor {
                at: DateTime::from_timestamp(1_780_000_000 - i, 0).unwrap(),
                id: Uuid::now_v7(),
            })
            .collect();
        let page = Page::from_overfetch(ids.clone(), 2, |c| *c);
        assert_eq!(page.items.len(), 2);
        assert_eq!(page.next_cursor, Some(ids[1].encode()));
        let last = Page::from_overfetch(ids[..2].to_vec(), 2, |c| *c);
        assert_eq!(last.next_cursor, None);
    }
}
