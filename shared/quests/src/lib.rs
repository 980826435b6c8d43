//! Quests and Memory Crystals (F-006).
