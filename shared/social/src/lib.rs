//! Social (F-005): public personas, the share page, shares, compatibility.
