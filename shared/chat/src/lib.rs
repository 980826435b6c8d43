//! Chat with your persona (F-003). See issue "Chat with your persona".
